"""trafficgen"""
