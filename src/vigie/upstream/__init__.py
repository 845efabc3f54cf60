"""The upstream clients (like httpcore): the native HTTP/1.1 client and its pool
(client.py, connection.py), the options every client shares (options.py), each
principal's share of the pool (share.py), and the aiohttp/httpx clients kept for
sites that ask for them, one connection per exchange (libraries.py)."""
