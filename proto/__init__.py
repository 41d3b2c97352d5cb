"""Shoal's API (package shoal.v1): the `.proto` files and their generated modules.

The object model *is* these messages. Import the generated modules from here:
`from proto import objects_pb2 as pb`.
"""
