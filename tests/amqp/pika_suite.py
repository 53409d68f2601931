#!/usr/bin/python3
"""pika (BlockingConnection) against hbus-amqp: the RabbitMQ tutorials' patterns and more.

Every case checks message ids and SHA-256 checksums of the payloads end to end.
Usage: pika_suite.py PORT [CASE...]; prints one line per case and 'N passed, N failed'.
"""
import hashlib
import sys
import time
import traceback

import pika

PORT = int(sys.argv[1])
RUN = sys.argv[2:]


def conn(user='guest', password='guest', heartbeat=30):
    return pika.BlockingConnection(pika.ConnectionParameters(
        '127.0.0.1', PORT, '/', pika.PlainCredentials(user, password),
        heartbeat=heartbeat, blocked_connection_timeout=10, socket_timeout=10))


def body(i, size=64):
    base = ('message %d ' % i).encode()
    return (base * (size // len(base) + 1))[:size]


def sha(b):
    return hashlib.sha256(b).hexdigest()


def drain(ch, queue, n, ack=True, timeout=10):
    """Consume n messages; returns [(message_id, sha256, props, method)]."""
    got = []
    deadline = time.time() + timeout
    while len(got) < n and time.time() < deadline:
        m, p, b = ch.basic_get(queue, auto_ack=not ack)
        if m is None:
            time.sleep(0.01)
            continue
        got.append((p.message_id, sha(b), p, m))
        if ack:
            ch.basic_ack(m.delivery_tag)
    return got


def publish_n(ch, exchange, key, n, size=64, start=0, **props):
    sent = {}
    for i in range(start, start + n):
        b = body(i, size)
        ch.basic_publish(exchange, key, b, pika.BasicProperties(message_id=str(i), **props))
        sent[str(i)] = sha(b)
    return sent


def check(got, sent):
    ids = [g[0] for g in got]
    assert len(ids) == len(set(ids)), 'duplicates: %r' % ids
    assert {g[0]: g[1] for g in got} == sent, 'ids/checksums differ: got %d of %d' % (len(got), len(sent))


def case_work_queue_prefetch_acks():
    """Tutorial 2: two workers with prefetch 1, manual acks, every message once."""
    c = conn()
    ch = c.channel()
    ch.queue_declare('work', durable=True)
    ch.queue_purge('work')
    ch.confirm_delivery()
    sent = publish_n(ch, '', 'work', 200, delivery_mode=2)
    w = [conn(), conn()]
    wch = [x.channel() for x in w]
    got = []
    for x in wch:
        x.basic_qos(prefetch_count=1)
    deadline = time.time() + 20
    while len(got) < 200 and time.time() < deadline:
        for x in wch:
            m, p, b = x.basic_get('work')
            if m:
                got.append((p.message_id, sha(b)))
                x.basic_ack(m.delivery_tag)
    # and through basic.consume with prefetch: unacked never exceeds 1
    sent2 = publish_n(ch, '', 'work', 50, start=1000)
    seen, outstanding = [], 0
    for m, p, b in wch[0].consume('work', inactivity_timeout=5):
        if m is None:
            break
        seen.append((p.message_id, sha(b)))
        wch[0].basic_ack(m.delivery_tag)
        if len(seen) == 50:
            break
    wch[0].cancel()
    check(got, sent)
    check(seen, sent2)
    for x in w:
        x.close()
    c.close()


def case_fanout_pubsub():
    """Tutorial 3: a fanout exchange copies every message to each bound queue."""
    c = conn()
    ch = c.channel()
    ch.exchange_declare('logs', 'fanout')
    qs = [ch.queue_declare('', exclusive=True).method.queue for _ in range(3)]
    for q in qs:
        ch.queue_bind(q, 'logs')
    sent = publish_n(ch, 'logs', '', 30)
    for q in qs:
        check(drain(ch, q, 30), sent)
    c.close()


def case_direct_and_topic_routing():
    """Tutorials 4 and 5: direct keys and topic patterns."""
    c = conn()
    ch = c.channel()
    ch.exchange_declare('direct_logs', 'direct')
    ch.exchange_declare('topic_logs', 'topic')
    qe = ch.queue_declare('', exclusive=True).method.queue
    qw = ch.queue_declare('', exclusive=True).method.queue
    ch.queue_bind(qe, 'direct_logs', 'error')
    ch.queue_bind(qw, 'direct_logs', 'warning')
    ch.queue_bind(qw, 'direct_logs', 'error')
    e = publish_n(ch, 'direct_logs', 'error', 5)
    w = publish_n(ch, 'direct_logs', 'warning', 5, start=100)
    publish_n(ch, 'direct_logs', 'info', 5, start=200)
    check(drain(ch, qe, 5), e)
    both = dict(e)
    both.update(w)
    check(drain(ch, qw, 10), both)
    qk = ch.queue_declare('', exclusive=True).method.queue
    qa = ch.queue_declare('', exclusive=True).method.queue
    ch.queue_bind(qk, 'topic_logs', 'kern.*')
    ch.queue_bind(qa, 'topic_logs', '*.critical')
    ch.queue_bind(qa, 'topic_logs', 'audit.#')
    k = publish_n(ch, 'topic_logs', 'kern.info', 4)
    kc = publish_n(ch, 'topic_logs', 'kern.critical', 4, start=10)
    a = publish_n(ch, 'topic_logs', 'audit.x.y.z', 4, start=20)
    publish_n(ch, 'topic_logs', 'user.info', 4, start=30)
    kk = dict(k)
    kk.update(kc)
    check(drain(ch, qk, 8), kk)
    aa = dict(kc)
    aa.update(a)
    check(drain(ch, qa, 8), aa)
    c.close()


def case_headers_exchange():
    """A headers exchange with x-match all and any; properties come back unchanged."""
    c = conn()
    ch = c.channel()
    ch.exchange_declare('hdrs', 'headers')
    qall = ch.queue_declare('', exclusive=True).method.queue
    qany = ch.queue_declare('', exclusive=True).method.queue
    ch.queue_bind(qall, 'hdrs', arguments={'x-match': 'all', 'venue': 'xnas', 'kind': 'eq'})
    ch.queue_bind(qany, 'hdrs', arguments={'x-match': 'any', 'venue': 'xnas', 'kind': 'fx'})
    both = {}
    for i in range(3):
        b = body(i)
        ch.basic_publish('hdrs', '', b, pika.BasicProperties(
            message_id=str(i), headers={'venue': 'xnas', 'kind': 'eq', 'n': i, 'f': True},
            content_type='application/octet-stream', correlation_id='c%d' % i,
            timestamp=1700000000 + i, type='tick', app_id='suite', priority=3,
            expiration='60000', delivery_mode=2))
        both[str(i)] = sha(b)
    b = body(9)
    ch.basic_publish('hdrs', '', b, pika.BasicProperties(message_id='9', headers={'kind': 'fx'}))
    got = drain(ch, qall, 3)
    check(got, both)
    for mid, _, p, _ in got:
        i = int(mid)
        assert p.headers == {'venue': 'xnas', 'kind': 'eq', 'n': i, 'f': True}, p.headers
        assert (p.content_type, p.correlation_id, p.timestamp, p.type, p.app_id, p.priority,
                p.expiration, p.delivery_mode) == ('application/octet-stream', 'c%d' % i,
                                                   1700000000 + i, 'tick', 'suite', 3, '60000', 2), p
    any_sent = dict(both)
    any_sent['9'] = sha(b)
    check(drain(ch, qany, 4), any_sent)
    c.close()


def case_rpc_reply_to():
    """Tutorial 6: RPC with reply_to and correlation_id through a server thread's channel."""
    c = conn()
    ch = c.channel()
    ch.queue_declare('rpc_queue')
    ch.queue_purge('rpc_queue')
    cb = ch.queue_declare('', exclusive=True).method.queue
    s = conn()
    sch = s.channel()
    results = {}
    for n in range(10):
        ch.basic_publish('', 'rpc_queue', str(n).encode(),
                         pika.BasicProperties(reply_to=cb, correlation_id='corr-%d' % n,
                                              message_id=str(n)))
        m, p, b = None, None, None
        deadline = time.time() + 5
        while m is None and time.time() < deadline:
            m, p, b = sch.basic_get('rpc_queue')
        assert m is not None, 'request %d not delivered' % n
        x = int(b)
        reply = str(x * x).encode()
        sch.basic_publish('', p.reply_to, reply,
                          pika.BasicProperties(correlation_id=p.correlation_id, message_id=p.message_id))
        sch.basic_ack(m.delivery_tag)
        got = drain(ch, cb, 1)
        assert got and got[0][2].correlation_id == 'corr-%d' % n, got
        results[n] = got[0][1]
    assert results == {n: sha(str(n * n).encode()) for n in range(10)}
    s.close()
    c.close()


def case_confirms_and_mandatory_returns():
    """Confirms ack routed messages; mandatory unroutable ones come back 312 NO_ROUTE."""
    c = conn()
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare('confirmed')
    ch.queue_purge('confirmed')
    sent = publish_n(ch, '', 'confirmed', 100)
    check(drain(ch, 'confirmed', 100), sent)
    try:
        ch.basic_publish('', 'no-such-queue', b'lost', pika.BasicProperties(message_id='x'),
                         mandatory=True)
        raise AssertionError('unroutable mandatory publish was not returned')
    except pika.exceptions.UnroutableError as e:
        assert e.messages[0].method.reply_code == 312, e.messages[0].method
        assert e.messages[0].properties.message_id == 'x'
    c.close()


def case_overflow_nack_and_oversize():
    """A full reject-publish queue nacks; a message larger than the slot is nacked."""
    c = conn()
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare('tiny', arguments={'x-max-length': 4, 'x-overflow': 'reject-publish',
                                        'x-hbus-slot-size': 256})
    ch.queue_purge('tiny')
    sent = publish_n(ch, '', 'tiny', 4)
    try:
        ch.basic_publish('', 'tiny', b'five', pika.BasicProperties(message_id='5'))
        raise AssertionError('publish to a full queue was confirmed')
    except pika.exceptions.NackError:
        pass
    check(drain(ch, 'tiny', 4), sent)
    try:
        ch.basic_publish('', 'tiny', b'z' * 1000, pika.BasicProperties(message_id='big'))
        raise AssertionError('oversize publish was confirmed')
    except pika.exceptions.NackError:
        pass
    c.close()


def case_ttl_dead_letter():
    """x-message-ttl plus x-dead-letter-exchange: expired messages reach the DLX queue."""
    c = conn()
    ch = c.channel()
    ch.exchange_declare('dlx', 'fanout')
    ch.queue_declare('dead')
    ch.queue_purge('dead')
    ch.queue_bind('dead', 'dlx')
    ch.queue_declare('short', arguments={'x-message-ttl': 100, 'x-dead-letter-exchange': 'dlx'})
    sent = publish_n(ch, '', 'short', 5)
    time.sleep(0.4)
    # expiry is noticed when the queue is read
    m, _, _ = ch.basic_get('short')
    assert m is None, 'a message outlived its TTL'
    got = drain(ch, 'dead', 5)
    check(got, sent)
    for g in got:
        assert g[2].headers.get('x-first-death-reason') == 'expired', g[2].headers
        # RabbitMQ's x-death array, rebuilt by the gateway
        d = g[2].headers.get('x-death')
        assert isinstance(d, list) and len(d) == 1, g[2].headers
        assert d[0]['reason'] == 'expired' and d[0]['queue'] == 'short' and d[0]['count'] == 1, d
        assert d[0]['routing-keys'] == ['short'], d
    # reject without requeue dead-letters too
    ch.queue_declare('rej', arguments={'x-dead-letter-exchange': 'dlx'})
    s2 = publish_n(ch, '', 'rej', 3, start=50)
    for _ in range(3):
        m, p, b = ch.basic_get('rej')
        ch.basic_reject(m.delivery_tag, requeue=False)
    check(drain(ch, 'dead', 3), s2)
    c.close()


def case_nack_requeue_redelivered():
    """nack(requeue) gives the message back flagged redelivered; multiple acks settle all."""
    c = conn()
    ch = c.channel()
    ch.queue_declare('again')
    ch.queue_purge('again')
    sent = publish_n(ch, '', 'again', 5)
    first = []
    for _ in range(5):
        m, p, b = ch.basic_get('again')
        assert not m.redelivered
        first.append(m.delivery_tag)
    ch.basic_nack(first[-1], multiple=True, requeue=True)
    got = []
    tags = []
    for _ in range(5):
        m, p, b = ch.basic_get('again')
        assert m and m.redelivered, m
        got.append((p.message_id, sha(b), p, m))
        tags.append(m.delivery_tag)
    ch.basic_ack(tags[-1], multiple=True)
    check(got, sent)
    m, _, _ = ch.basic_get('again')
    assert m is None
    # closing a channel with unacked deliveries requeues them
    sent2 = publish_n(ch, '', 'again', 3, start=10)
    ch2 = c.channel()
    for _ in range(3):
        assert ch2.basic_get('again')[0] is not None
    ch2.close()
    got = drain(ch, 'again', 3)
    check(got, sent2)
    assert all(g[3].redelivered for g in got)
    c.close()


def case_protected_queue_nack_requeue():
    """On a protected queue (x-hbus-protected) consumers map the bytes read-only and their
    nack(requeue) goes through hbusd: the messages come back redelivered, byte for byte."""
    c = conn()
    ch = c.channel()
    ch.queue_declare('protq', arguments={'x-hbus-protected': True, 'x-hbus-slot-size': 512})
    ch.queue_purge('protq')
    sent = publish_n(ch, '', 'protq', 4, size=300)
    tags = []
    for _ in range(2):  # basic.get: the handle of an open_queue for read
        m, p, b = ch.basic_get('protq')
        assert m and not m.redelivered and sha(b) == sent[p.message_id], m
        tags.append(m.delivery_tag)
    ch.basic_nack(tags[-1], multiple=True, requeue=True)
    got, redelivered, nacked = [], 0, False
    ch.basic_qos(prefetch_count=4)
    for m, p, b in ch.consume('protq', inactivity_timeout=5):  # basic.consume: a consumer
        assert m is not None, 'got %d of 4' % len(got)
        if not m.redelivered and not nacked:
            ch.basic_nack(m.delivery_tag, requeue=True)  # through hbusd again
            nacked = True
            continue
        redelivered += m.redelivered
        got.append((p.message_id, sha(b), p, m))
        ch.basic_ack(m.delivery_tag)
        if len(got) == 4:
            break
    ch.cancel()
    check(got, sent)
    assert nacked and redelivered == 3, redelivered
    assert ch.basic_get('protq')[0] is None
    try:  # it is protected: declaring it without the argument is another queue
        ch.queue_declare('protq', arguments={'x-hbus-slot-size': 512})
        raise AssertionError('redeclared without x-hbus-protected')
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 406 and 'protected' in e.reply_text, e
    c.close()


def case_basic_get_empty_and_recover():
    """basic.get on an empty queue is get-empty; basic.recover requeues unacked."""
    c = conn()
    ch = c.channel()
    ch.queue_declare('getq')
    ch.queue_purge('getq')
    assert ch.basic_get('getq') == (None, None, None)
    sent = publish_n(ch, '', 'getq', 2)
    m1 = ch.basic_get('getq')[0]
    assert m1.message_count == 1, m1
    ch.basic_recover(requeue=True)
    got = drain(ch, 'getq', 2)
    check(got, sent)
    c.close()


def case_wrong_password_refused():
    """A wrong password is connection.close 403 ACCESS_REFUSED."""
    try:
        conn(password='wrong')
        raise AssertionError('connected with a wrong password')
    except pika.exceptions.ProbableAuthenticationError as e:
        assert '403' in str(e) or 'ACCESS_REFUSED' in str(e), e


def case_errors_are_channel_exceptions():
    """Missing queue: 404 closes the channel, not the connection; bad vhost: 530."""
    c = conn()
    ch = c.channel()
    try:
        ch.queue_declare('does-not-exist', passive=True)
        raise AssertionError('passive declare of a missing queue succeeded')
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404, e
    ch = c.channel()
    try:
        ch.basic_publish('no-such-exchange', 'k', b'x')
        ch.queue_declare('', exclusive=True)  # the close arrives meanwhile
        raise AssertionError('publish to a missing exchange did not close the channel')
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404, e
    ch = c.channel()
    ch.queue_declare('ok-after-errors')
    c.close()
    try:
        pika.BlockingConnection(pika.ConnectionParameters(
            '127.0.0.1', PORT, 'other-vhost', pika.PlainCredentials('guest', 'guest')))
        raise AssertionError('opened a vhost that does not exist')
    except pika.exceptions.AMQPConnectionError:
        pass


def case_exclusive_queue_is_connection_scoped():
    """An exclusive queue: 405 for another connection, gone with its connection."""
    a = conn()
    b = conn()
    q = a.channel().queue_declare('', exclusive=True).method.queue
    try:
        b.channel().queue_declare(q, passive=True)
        raise AssertionError('another connection used an exclusive queue')
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 405, e
    a.close()
    try:
        b.channel().queue_declare(q, passive=True)
        raise AssertionError('exclusive queue outlived its connection')
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404, e
    b.close()


def case_exclusive_consumer():
    """basic.consume exclusive: 405 beside other consumers; while it consumes, 405 for another
    consumer, basic.get and purge (it claims without a CAS); every message once."""
    a = conn()
    b = conn()
    ach = a.channel()
    ach.queue_declare('xq')
    ach.queue_purge('xq')
    bch = b.channel()
    shared = bch.basic_consume('xq', lambda *x: None)
    try:
        ach.basic_consume('xq', lambda *x: None, exclusive=True)
        raise AssertionError('an exclusive consumer beside another consumer')
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 405, e
    bch.basic_cancel(shared)
    ach = a.channel()
    ach.basic_qos(prefetch_count=10)
    sent = publish_n(ach, '', 'xq', 100)
    got = []

    def on_msg(ch, m, p, b):
        got.append((p.message_id, sha(b)))
        ch.basic_ack(m.delivery_tag)
    tag = ach.basic_consume('xq', on_msg, exclusive=True)
    for what, op in (('basic.consume', lambda ch: ch.basic_consume('xq', lambda *x: None)),
                     ('basic.get', lambda ch: ch.basic_get('xq')),
                     ('queue.purge', lambda ch: ch.queue_purge('xq'))):
        try:
            op(b.channel())
            raise AssertionError('%s beside the exclusive consumer' % what)
        except pika.exceptions.ChannelClosedByBroker as e:
            assert e.reply_code == 405, (what, e)
    deadline = time.time() + 20
    while len(got) < 100 and time.time() < deadline:
        a.process_data_events(time_limit=0.1)
    check(got, sent)
    ach.basic_cancel(tag)
    # cancelled: the queue is everyone's again
    bch = b.channel()
    bch.queue_purge('xq')
    sent = publish_n(bch, '', 'xq', 3, start=200)
    check(drain(bch, 'xq', 3), sent)
    a.close()
    b.close()


def case_large_messages_many_frames():
    """Bodies larger than frame_max arrive whole (several body frames)."""
    c = pika.BlockingConnection(pika.ConnectionParameters(
        '127.0.0.1', PORT, '/', pika.PlainCredentials('guest', 'guest'), frame_max=8192))
    ch = c.channel()
    ch.queue_declare('big', arguments={'x-hbus-slot-size': 65536, 'x-max-length': 16})
    ch.queue_purge('big')
    sent = publish_n(ch, '', 'big', 5, size=50000)
    check(drain(ch, 'big', 5), sent)
    c.close()


CASES = [(n, f) for n, f in sorted(globals().items()) if n.startswith('case_')]

passed = failed = 0
for name, fn in CASES:
    short = name[5:]
    if RUN and short not in RUN:
        continue
    t0 = time.time()
    try:
        fn()
        passed += 1
        print('ok   %-40s %.2fs' % (short, time.time() - t0), flush=True)
    except Exception:
        failed += 1
        print('FAIL %-40s' % short, flush=True)
        traceback.print_exc()
print('%d passed, %d failed' % (passed, failed))
sys.exit(1 if failed else 0)
