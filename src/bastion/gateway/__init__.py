"""The governed LLM gateway (see docs/gateway.md)."""
