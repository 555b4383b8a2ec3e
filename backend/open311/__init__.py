"""Open311 GeoReport v2: civic-tech clients read public service requests and file complaints with an API key."""
