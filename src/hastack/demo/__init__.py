"""The demo work-order app (hastack.demo.app) and its schema (hastack.demo.migrations)."""
