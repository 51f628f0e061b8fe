"""What every room may import, beside `tierflow.errors`: the declarative base model
(`spec`), lazily loaded package exports (`lazy`) and the retry mechanics (`retry`).
Nothing here imports another room of tierflow.
"""
