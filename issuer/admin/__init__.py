"""The admin API (``/admin/v1``): the CLI's operations over HTTP, for keyswap's own tokens."""
