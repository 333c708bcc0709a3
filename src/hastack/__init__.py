"""hastack: stand up, operate and prove a highly available web-service stack."""

__version__ = "0.1.0"
