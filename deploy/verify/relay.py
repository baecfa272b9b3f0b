#!/usr/bin/env python3
"""relay.py LISTEN_ADDR:PORT TARGET_ADDR:PORT — forward TCP connections.

Lets containers on a podman bridge reach a service bound to the host's 127.0.0.1 (PostgreSQL,
Ceph RGW) through the bridge's gateway address, which is host-local. IP_FREEBIND: the bridge
interface only exists once a container joins the network, so bind before it does."""
import asyncio, socket, sys

IP_FREEBIND = 15


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.write_eof()  # half-close: the other direction may still carry a response
    except OSError:
        writer.close()


async def main(listen, target):
    lhost, lport = listen.rsplit(':', 1)
    thost, tport = target.rsplit(':', 1)

    async def handle(reader, writer):
        try:
            treader, twriter = await asyncio.open_connection(thost, int(tport))
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, twriter), pipe(treader, writer))
        writer.close()
        twriter.close()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
    sock.bind((lhost, int(lport)))
    server = await asyncio.start_server(handle, sock=sock)
    async with server:
        await server.serve_forever()


if __name__ == '__main__':
    asyncio.run(main(sys.argv[1], sys.argv[2]))
