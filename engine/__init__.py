"""livematch engine: livestream clip in, ranked catalogue products out.

A UI-free library. Heavy dependencies (torch, timm, annoy, cv2 DNN) are imported
inside the builders so that ``import engine`` stays fast.
"""

__version__ = "0.1.0"
