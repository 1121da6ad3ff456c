"""Flows: the flow table, its batch form with triage, and TCP stream reassembly."""

from detector.flows.batch import BatchFlowTable, FlowKeys, flow_keys
from detector.flows.reassembly import StreamData, StreamReassembler
from detector.flows.table import Flow, FlowTable

__all__ = [
    "BatchFlowTable",
    "Flow",
    "FlowKeys",
    "FlowTable",
    "StreamData",
    "StreamReassembler",
    "flow_keys",
]
