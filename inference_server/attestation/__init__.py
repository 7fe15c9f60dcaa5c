"""TD attestation evidence: quote providers (configfs-tsm, none), the report-data layout that
binds a client nonce to what this server runs, and the model-files digest it reports."""
