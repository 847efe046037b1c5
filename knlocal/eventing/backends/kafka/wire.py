"""How the runtime and its Kafka data-plane processes talk: frames over a Unix socket pair.

A frame is a 4-byte length and a pickled list of messages (tuples whose first item names the
message). Both sides send several messages per frame where they can — the runtime one frame per
loop iteration, the data-plane processes one per poll or per acknowledged batch — so that the
cost of a system call and a wake-up is shared by a batch of events, not paid per event.
The socket pair is the only link: when the runtime dies (even by SIGKILL) the processes read
the end of the stream and stop.
"""

import asyncio
import logging
import pickle
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any, Final

Message = tuple[Any, ...]

_LENGTH: Final = struct.Struct(">I")


def encode_frame(messages: list[Message]) -> bytes:
    """One frame holding `messages`."""
    data = pickle.dumps(messages, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


class Channel:
    """A data-plane process's end: blocking, safe to send on from several threads.

    :param sock: its end of the socket pair.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._file = sock.makefile("rb")
        self._lock = threading.Lock()

    @classmethod
    def from_fd(cls, fd: int) -> "Channel":
        """The channel on an inherited socket file descriptor."""
        return cls(socket.socket(fileno=fd))

    def send(self, messages: list[Message]) -> None:
        """Send one frame; a runtime that is gone is ignored (the reader sees the end)."""
        frame = encode_frame(messages)
        try:
            with self._lock:
                self._sock.sendall(frame)
        except OSError:
            pass

    def receive(self) -> list[Message] | None:
        """The next frame's messages, or None at the end of the stream."""
        header = self._file.read(_LENGTH.size)
        if len(header) < _LENGTH.size:
            return None
        (length,) = _LENGTH.unpack(header)
        data = self._file.read(length)
        if len(data) < length:
            return None
        messages: list[Message] = pickle.loads(data)
        return messages


class Link:
    """The runtime's end, on its event loop: what is sent in one loop iteration is one frame.

    :param reader: the stream of the socket pair.
    :param writer: the same socket's writer.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._outbox: list[Message] = []
        self.closed = False

    def send(self, message: Message) -> None:
        """Queue `message`; the frame leaves when the loop is next idle."""
        if self.closed:
            return
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append(message)

    def _flush(self) -> None:
        messages, self._outbox = self._outbox, []
        if messages and not self.closed and not self._writer.is_closing():
            self._writer.write(encode_frame(messages))

    async def receive(self) -> list[Message] | None:
        """The next frame's messages, or None once the process closed its end."""
        try:
            header = await self._reader.readexactly(_LENGTH.size)
            (length,) = _LENGTH.unpack(header)
            messages: list[Message] = pickle.loads(await self._reader.readexactly(length))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        return messages

    def close(self) -> None:
        """Close the runtime's end (the process then reads the end of the stream)."""
        self.closed = True
        self._writer.close()


def run_process(argv: list[str], serve: Callable[[Channel, Message], int]) -> int:
    """The main of a data-plane process: its channel is the socket whose descriptor is
    `argv[1]`; `serve` gets it and the opening message, and returns the exit code."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python logs each retried connection attempt at ERROR, ten times a second per
    # client while Kafka is down; the runtime reports what matters (e.g. the ingress's 503s).
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    channel = Channel.from_fd(int(argv[1]))
    first = channel.receive()
    if not first:
        return 1
    return serve(channel, first[0])
