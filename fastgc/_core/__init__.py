"""The checking pipeline: layout, plan, estimators, schemes, noise, kinks, localisation,
verdict, diagnosis, driver and result.

It knows engines only through the interface of ``fastgc._engines.base.Objective`` (calls and
data on the engine object), never by importing ``fastgc._engines`` or ``fastgc._network``; a
test parses the imports to keep it so.
"""
