print("xbm-dist")
