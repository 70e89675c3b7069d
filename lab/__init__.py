"""The lab's instruments, shared by the tests and the benches (never imported by the engine or the IVR):
SIPp phones (sipp), RTP packets, streams, capture on loopback and pcap files (rtpcapture), the pcaps SIPp
plays (dtmfpcap), G.711 (g711), and tone synthesis and measurement (tones).
"""
