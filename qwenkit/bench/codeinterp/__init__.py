"""Code-interpreter benchmark modelled on Qwen-Agent's: math, visualization (hard/easy), executable rate."""
