// placeholder: PROXY protocol v1/v2 parser
