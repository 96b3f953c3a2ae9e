"""The ETL layer: configuration, input/output and the job entry points."""
