"""The HTTP face: routes parse input, call one service, map results and errors."""
