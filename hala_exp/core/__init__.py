"""The framework's core: the pipeline, the content-addressed store, config schemas, tracking, the stage contract
and model directories. Nothing here imports torch at module level."""
