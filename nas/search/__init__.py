"""Searching a space with a scorer: the search loop (`loop`), many processes on one study
(`workers`, `shared_study`), objectives and the pick (`objectives`), how far the result can be
trusted (`trust`), and a gradient method's derived architecture (`derived`)."""
