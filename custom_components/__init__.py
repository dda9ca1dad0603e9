"""Home Assistant custom integrations (this repository holds one: coral_vision)."""
