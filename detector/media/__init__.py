"""Media primitives: H.264 encoding, MP4 writing and faststart, audio passthrough, MP4 file helpers,
pictures (JPEG). Sinks, clips, recording, the web view and MQTT use them."""
