"""The engine: protocol × patients → outcomes, for one patient and for a million alike.

``plan`` turns a protocol into arrays, ``cohort`` and ``streams`` draw the
virtual patients, ``outcomes`` holds the one set of outcome rules, ``batch``
solves and applies them (vmapped, split over devices), ``simulate`` is one
patient through the same kernel.
"""
