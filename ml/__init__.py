"""Pure model code: no network, no database, no Kafka. Testable without a broker."""
