"""Send "Hello" to the "strlen" worker; prints 5.

python examples/strlen_client.py [host:port ...]
"""

import asyncio
import sys

from geartrain import Client


async def main(servers: list[str]) -> None:
    async with Client(servers) as client:
        result = await client.submit("strlen", "Hello", timeout=10)
        print(result.decode())  # 5


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["localhost:4730"]))
