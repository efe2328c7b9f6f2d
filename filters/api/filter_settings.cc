// Written by its helper; see the header.
