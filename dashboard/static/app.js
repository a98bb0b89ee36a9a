// warren dashboard: progressive enhancement only; every page works without it.
