"""t2i-bench: per-image latency, throughput and cost of the text-to-image pipeline on CPU."""
