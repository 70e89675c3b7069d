"""The recording IVR: a FastAGI server and its conversation. It saves messages through the messages
service (the same path as uploads) and checks codes through the recordings service."""
