  /* comment */ -- another
 attach database '/tmp/x.db' as x
