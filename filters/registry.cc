// Written by its helper; see registry.h.
