// XBM library tests live beside this file.
