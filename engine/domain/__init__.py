"""Pure rules, no I/O: nothing here imports asyncio, asyncpg or an HTTP library."""
