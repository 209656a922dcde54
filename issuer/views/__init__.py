"""HTTP views: they translate HTTP to protocol calls and back, nothing more."""
