#!/usr/bin/python3
"""Bad input against hbus-amqp on raw sockets: each case expects the spec's
connection exception (or a plain close), and the gateway keeps serving.

Usage: bad_input.py PORT; prints one line per case and 'N passed, N failed'.
"""
import socket
import struct
import sys
import time

PORT = int(sys.argv[1])
HEADER = b'AMQP\x00\x00\x09\x01'


def frame(ftype, ch, payload):
    return struct.pack('>BHI', ftype, ch, len(payload)) + payload + b'\xce'


def method(ch, cls, mid, args=b''):
    return frame(1, ch, struct.pack('>HH', cls, mid) + args)


def shortstr(s):
    return struct.pack('>B', len(s)) + s


def longstr(s):
    return struct.pack('>I', len(s)) + s


def read_frames(s, want=None, timeout=5):
    """Frames until a method (class, id) == want, or EOF/timeout. Returns the list."""
    s.settimeout(timeout)
    buf, out = b'', []
    deadline = time.time() + timeout
    while time.time() < deadline:
        while len(buf) >= 7:
            t, ch, n = struct.unpack('>BHI', buf[:7])
            if len(buf) < 8 + n:
                break
            p = buf[7:7 + n]
            buf = buf[8 + n:]
            f = (t, ch, p)
            out.append(f)
            if want and t == 1 and struct.unpack('>HH', p[:4]) == want:
                return out
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        if not d:
            out.append(('eof',))
            return out
        buf += d
    return out


def close_code(frames):
    for f in frames:
        if f[0] == 1 and struct.unpack('>HH', f[2][:4]) in ((10, 50), (20, 40)):
            return struct.unpack('>H', f[2][4:6])[0]
    return None


def handshake():
    s = socket.create_connection(('127.0.0.1', PORT))
    s.sendall(HEADER)
    read_frames(s, (10, 10))
    s.sendall(method(0, 10, 11, b'\0\0\0\0' + shortstr(b'PLAIN') + longstr(b'\0guest\0guest') +
                     shortstr(b'en_US')))
    read_frames(s, (10, 30))
    s.sendall(method(0, 10, 31, struct.pack('>HIH', 0, 131072, 0)))
    s.sendall(method(0, 10, 40, shortstr(b'/') + shortstr(b'') + b'\0'))
    read_frames(s, (10, 41))
    return s


def opened_channel():
    s = handshake()
    s.sendall(method(1, 20, 10, shortstr(b'')))
    read_frames(s, (20, 11))
    return s


def case_wrong_protocol_header():
    s = socket.create_connection(('127.0.0.1', PORT))
    s.sendall(b'HTTP/1.1 GET /\r\n\r\n')
    s.settimeout(5)
    got = s.recv(64)
    assert got == HEADER, got
    assert s.recv(64) == b''


def case_bad_frame_end():
    s = handshake()
    s.sendall(frame(1, 0, b'\0\x0a\0\x32')[:-1] + b'\x00')
    assert close_code(read_frames(s, (10, 50))) == 501


def case_frame_over_frame_max():
    s = handshake()
    s.sendall(struct.pack('>BHI', 3, 1, 10 * 1024 * 1024))
    assert close_code(read_frames(s, (10, 50))) == 501


def case_method_on_unopened_channel():
    s = handshake()
    s.sendall(method(7, 50, 10, b'\0\0' + shortstr(b'q') + b'\0' + b'\0\0\0\0'))
    assert close_code(read_frames(s, (10, 50))) == 504


def case_unknown_method():
    s = opened_channel()
    s.sendall(method(1, 99, 99))
    assert close_code(read_frames(s, (10, 50))) == 540


def case_truncated_method_arguments():
    s = opened_channel()
    s.sendall(method(1, 50, 10, b'\0'))
    assert close_code(read_frames(s, (10, 50))) == 502


def case_content_without_publish():
    s = opened_channel()
    s.sendall(frame(2, 1, struct.pack('>HHQH', 60, 0, 5, 0)))
    assert close_code(read_frames(s, (10, 50))) == 505


def case_body_longer_than_header():
    s = opened_channel()
    s.sendall(method(1, 60, 40, b'\0\0' + shortstr(b'') + shortstr(b'nowhere') + b'\0'))
    s.sendall(frame(2, 1, struct.pack('>HHQH', 60, 0, 2, 0)))
    s.sendall(frame(3, 1, b'toolong'))
    assert close_code(read_frames(s, (10, 50))) == 505


def case_heartbeat_on_channel():
    s = handshake()
    s.sendall(frame(8, 3, b''))
    assert close_code(read_frames(s, (10, 50))) == 501


def case_unknown_frame_type():
    s = handshake()
    s.sendall(frame(77, 0, b'xyz'))
    assert close_code(read_frames(s, (10, 50))) == 501


def case_second_channel_open():
    s = opened_channel()
    s.sendall(method(1, 20, 10, shortstr(b'')))
    assert close_code(read_frames(s, (10, 50))) == 504


def case_half_closed_mid_frame():
    s = opened_channel()
    s.sendall(method(1, 50, 10, b'\0\0')[:5])
    s.shutdown(socket.SHUT_WR)
    got = read_frames(s)
    assert got and got[-1] == ('eof',), got


def case_garbage_bytes():
    import random
    r = random.Random(16)
    for _ in range(20):
        s = handshake()
        s.sendall(bytes(r.getrandbits(8) for _ in range(r.randint(1, 3000))))
        s.shutdown(socket.SHUT_WR)
        read_frames(s, timeout=2)
        s.close()


def case_gateway_still_serves():
    s = opened_channel()
    s.sendall(method(1, 50, 10, b'\0\0' + shortstr(b'bad.input.alive') + b'\0' + b'\0\0\0\0'))
    fr = read_frames(s, (50, 11))
    assert fr and fr[-1][0] == 1 and struct.unpack('>HH', fr[-1][2][:4]) == (50, 11), fr


CASES = [(n, f) for n, f in sorted(globals().items()) if n.startswith('case_')]
CASES.sort(key=lambda x: x[0] == 'case_gateway_still_serves')
passed = failed = 0
for name, fn in CASES:
    try:
        fn()
        passed += 1
        print('ok   %s' % name[5:], flush=True)
    except Exception as e:
        failed += 1
        print('FAIL %s: %r' % (name[5:], e), flush=True)
print('%d passed, %d failed' % (passed, failed))
sys.exit(1 if failed else 0)
