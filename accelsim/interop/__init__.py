"""Files other tools read: ``.tflite`` (TFLite Micro, LiteRT). Optional extras; the core never
imports this package."""
