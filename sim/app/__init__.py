"""The live what-if explorer: a local web page over the sizing study (engine, inputs, keeping results, server)."""
