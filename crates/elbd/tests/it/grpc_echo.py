"""A real gRPC server and client (grpcio) for the tests, with no generated code.

  python grpc_echo.py serve ADDR   answers /echo.Echo/Say with b"echo:" + request, naming ADDR
                                   in the trailing metadata
  python grpc_echo.py call ADDR    calls it once; prints "<reply> <x-served-by>"
"""

import sys
from concurrent import futures

import grpc

mode, addr = sys.argv[1], sys.argv[2]
if mode == "serve":
    def say(request, context):
        context.set_trailing_metadata((("x-served-by", addr),))
        return b"echo:" + request

    handler = grpc.method_handlers_generic_handler(
        "echo.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(addr)
    server.start()
    server.wait_for_termination()
else:
    with grpc.insecure_channel(addr) as channel:
        reply, call = channel.unary_unary("/echo.Echo/Say").with_call(b"hello", timeout=5)
        served_by = dict(call.trailing_metadata())["x-served-by"]
        print(reply.decode(), served_by)
