"""The trackwire conformance kit.

It will hold the case catalogue (every MUST and SHOULD of the protocol specifications with a
stable id), hypothesis strategies for valid and invalid frames and sessions, the reference
servers with their simulated fleet, and the runner that judges any client or server and
reports per case.
"""
