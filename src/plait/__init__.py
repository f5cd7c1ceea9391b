"""plait: concurrent execution made effortless."""
