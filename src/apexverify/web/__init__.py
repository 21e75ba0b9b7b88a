"""What the two web edges (the v1 API and the dashboard) share: request dependencies (the
services, the unit of work), streaming uploads and export downloads."""
