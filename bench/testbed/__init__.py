"""The testbed: real Pinewood and Go reference processes, one per network
namespace, on links with emulated delay, jitter, loss and rate
(``python -m bench.testbed``)."""
