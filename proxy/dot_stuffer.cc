// placeholder: filled in by the core relay work
