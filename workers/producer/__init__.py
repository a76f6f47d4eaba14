"""Frame producers: cameras in, JPEG frames with typed headers out to Kafka.

config (cameras.yaml) → sources (OpenCV/FFmpeg, image folders) → camera (one thread per
camera: sampling, encoding, sequence numbers, reconnects) → sender (bounded buffer to Kafka).
sharding picks this replica's cameras; main wires it all into `maskwatch producer`.
"""
