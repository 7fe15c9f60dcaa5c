"""The configfs-tsm quote provider against a directory tree with the ABI's behaviour
(tests/server/tsm_fixture.py), and the "no TEE" path. No model needed."""

from __future__ import annotations

import hashlib

import pytest
from tsm_fixture import ConfigfsTsm

from inference_server.attestation.layout import QuoteFormatError, quote_report_data
from inference_server.attestation.provider import (
    AttestationError,
    ConfigfsTsmProvider,
    NoTeeProvider,
    NotInTeeError,
    detect,
)

DATA = hashlib.sha512(b"report data").digest()


@pytest.fixture
def tsm(tmp_path):
    with ConfigfsTsm(tmp_path / "tsm" / "report") as emulated:
        yield emulated


def test_quote_carries_the_report_data_written_to_inblob(tsm):
    quote = ConfigfsTsmProvider(tsm.root).quote(DATA)
    assert quote.provider == "tdx_guest"
    assert quote.generation == 1
    assert quote_report_data(quote.blob) == DATA
    assert tsm.quotes == [DATA]


def test_each_quote_uses_a_fresh_entry(tsm):
    provider = ConfigfsTsmProvider(tsm.root)
    other = hashlib.sha512(b"other").digest()
    assert quote_report_data(provider.quote(DATA).blob) == DATA
    assert quote_report_data(provider.quote(other).blob) == other
    assert len([p for p in tsm.root.iterdir() if p.is_dir()]) == 2


def test_a_concurrent_writer_is_detected_and_retried(tsm):
    tsm.concurrent_writers = 2
    quote = ConfigfsTsmProvider(tsm.root, attempts=3).quote(DATA)
    assert quote.generation == 1
    assert len([p for p in tsm.root.iterdir() if p.is_dir()]) == 3


def test_persistent_concurrent_writers_fail_instead_of_returning_a_foreign_quote(tsm):
    tsm.concurrent_writers = 3
    with pytest.raises(AttestationError, match="another writer"):
        ConfigfsTsmProvider(tsm.root, attempts=3).quote(DATA)


def test_a_failing_quote_provider_is_an_error_not_an_empty_quote(tsm):
    tsm.failures = 1
    with pytest.raises(AttestationError, match="outblob is 0 bytes"):
        ConfigfsTsmProvider(tsm.root).quote(DATA)


def test_entries_without_attributes_are_an_error(tmp_path):
    entry_root = tmp_path / "broken"
    entry_root.mkdir()
    # A report root whose entries never get attributes: not a working configfs-tsm.
    with pytest.raises(AttestationError, match="no report attributes"):
        ConfigfsTsmProvider(entry_root, attribute_wait=0.05).quote(DATA)


def test_report_data_must_be_64_bytes(tsm):
    with pytest.raises(ValueError, match="64 bytes"):
        ConfigfsTsmProvider(tsm.root).quote(b"short")


def test_no_report_root_means_not_in_a_td(tmp_path):
    provider = detect(tmp_path / "absent")
    assert isinstance(provider, NoTeeProvider)
    with pytest.raises(NotInTeeError, match="not running in a TD"):
        provider.quote(DATA)
    with pytest.raises(NotInTeeError):
        ConfigfsTsmProvider(tmp_path / "absent").quote(DATA)


def test_detect_picks_configfs_when_the_report_root_exists(tsm):
    assert isinstance(detect(tsm.root), ConfigfsTsmProvider)


def test_quote_parser_reads_v5_and_refuses_non_tdx():
    from tsm_fixture import tdx_quote

    assert quote_report_data(tdx_quote(DATA, version=5)) == DATA
    sgx = bytearray(tdx_quote(DATA))
    sgx[4] = 0  # TEE type 0 = SGX
    with pytest.raises(QuoteFormatError, match="not TDX"):
        quote_report_data(bytes(sgx))
    with pytest.raises(QuoteFormatError, match="shorter"):
        quote_report_data(b"\x04\x00")
