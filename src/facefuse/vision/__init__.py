"""Vision: faces, landmarks and head pose from the models mediapipe ships."""

import os

# mediapipe's C++ side logs through glog/absl to stderr; keep only errors out of our JSON logs.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
