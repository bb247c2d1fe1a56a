"""The collector: institutions post events here; it validates them and makes them durable in Kafka."""
