"""leadflow: a lead-to-cash platform for online sales teams."""

__version__ = "0.1.0"
