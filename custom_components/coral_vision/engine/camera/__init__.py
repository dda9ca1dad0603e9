"""A camera's logic over results: filters, regions and tracking."""
