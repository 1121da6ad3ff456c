"""Flows: the flow table and TCP stream reassembly."""

from detector.flows.reassembly import StreamData, StreamReassembler
from detector.flows.table import Flow, FlowTable

__all__ = ["Flow", "FlowTable", "StreamData", "StreamReassembler"]
