"""Python client for Plexus: call agents, publish, subscribe and register agents
through a running host's Unix socket. Standard library only."""
from .client import Client, Message, PlexusError, Stream, default_socket_path, parse_traceparent
from . import wire

__all__ = ["Client", "Message", "PlexusError", "Stream", "default_socket_path", "parse_traceparent", "wire"]
