"""ip6tables cases: each rule line and what ``ip6tables-save`` v1.8.9 printed for it (None: refused).

Measured by helper xt6 on 2026-12-02 in ``unshare -n``: each line alone in a chain ``X`` of the
table, ``ip6tables-{nft,legacy}-restore`` then ``ip6tables-{nft,legacy}-save -t TABLE``. Both
backends printed the same for every line except ``! -s ::/0``, which legacy accepts and prints
and nft refuses (kslab refuses it, as for IPv4). ``tests/test_kernel_roundtrip6.py`` re-checks
every case on both backends as root.
"""

from __future__ import annotations

MEASURED6: list[tuple[str, str, str | None]] = [
    ('filter', '-d fd00:0:0:0::1/64 -j ACCEPT', '-A X -d fd00::/64 -j ACCEPT'),
    ('filter', '-s ::/0 -j ACCEPT', '-A X -j ACCEPT'),
    ('filter', '! -s ::/0 -j ACCEPT', None),
    ('filter', '-s 2001:DB8::1 -j ACCEPT', '-A X -s 2001:db8::1/128 -j ACCEPT'),
    ('filter', '-s 2001:db8::1/ffff:ffff:: -j ACCEPT', '-A X -s 2001:db8::/32 -j ACCEPT'),
    ('filter', '-s 2001:db8::1/ffff:0:ffff:: -j ACCEPT', '-A X -s 2001::/ffff:0:ffff:: -j ACCEPT'),
    ('filter', '-s 2001:db8::1/255.255.0.0 -j ACCEPT', None),
    ('filter', '-s ::ffff:10.0.0.1 -j ACCEPT', '-A X -s ::ffff:10.0.0.1/128 -j ACCEPT'),
    ('filter', '-s 10.0.0.1 -j ACCEPT', None),
    ('filter', '-s ::1/128 -j ACCEPT', '-A X -s ::1/128 -j ACCEPT'),
    ('filter', '! -d ::1/128 -j ACCEPT', '-A X ! -d ::1/128 -j ACCEPT'),
    ('filter', '-d 2001:db8::/0 -j ACCEPT', '-A X -j ACCEPT'),
    ('filter', '-d 2001:db8::/129 -j ACCEPT', None),
    ('filter', '-d 2001:db8::/032 -j ACCEPT', '-A X -d 2001:d80::/26 -j ACCEPT'),
    ('filter', '-d 2001:db8::/0x20 -j ACCEPT', '-A X -d 2001:db8::/32 -j ACCEPT'),
    ('filter', '-d fe80::1%eth0 -j ACCEPT', None),
    ('filter', '-d [fd00::1] -j ACCEPT', None),
    ('filter', '-d 0:0:0:0:0:0:0:1 -j ACCEPT', '-A X -d ::1/128 -j ACCEPT'),
    ('filter', '-d ::ffff:0:0/96 -j ACCEPT', '-A X -d ::ffff:0.0.0.0/96 -j ACCEPT'),
    ('filter', '-d 2001:0db8:0000:0000:0000:ff00:0042:8329 -j ACCEPT', '-A X -d 2001:db8::ff00:42:8329/128 -j ACCEPT'),
    ('filter', '-p tcp -j REJECT', '-A X -p tcp -j REJECT --reject-with icmp6-port-unreachable'),
    ('filter', '-j REJECT', '-A X -j REJECT --reject-with icmp6-port-unreachable'),
    ('filter', '-p tcp -j REJECT --reject-with tcp-reset', '-A X -p tcp -j REJECT --reject-with tcp-reset'),
    ('filter', '-j REJECT --reject-with tcp-reset', None),
    ('filter', '-j REJECT --reject-with icmp6-no-route', '-A X -j REJECT --reject-with icmp6-no-route'),
    ('filter', '-j REJECT --reject-with no-route', '-A X -j REJECT --reject-with icmp6-no-route'),
    ('filter', '-j REJECT --reject-with icmp6-adm-prohibited', '-A X -j REJECT --reject-with icmp6-adm-prohibited'),
    ('filter', '-j REJECT --reject-with adm-prohibited', '-A X -j REJECT --reject-with icmp6-adm-prohibited'),
    ('filter', '-j REJECT --reject-with icmp6-addr-unreachable', '-A X -j REJECT --reject-with icmp6-addr-unreachable'),
    ('filter', '-j REJECT --reject-with addr-unreach', '-A X -j REJECT --reject-with icmp6-addr-unreachable'),
    ('filter', '-j REJECT --reject-with icmp6-port-unreachable', '-A X -j REJECT --reject-with icmp6-port-unreachable'),
    ('filter', '-j REJECT --reject-with port-unreach', '-A X -j REJECT --reject-with icmp6-port-unreachable'),
    ('filter', '-j REJECT --reject-with icmp6-policy-fail', '-A X -j REJECT --reject-with icmp6-policy-fail'),
    ('filter', '-j REJECT --reject-with policy-fail', '-A X -j REJECT --reject-with icmp6-policy-fail'),
    ('filter', '-j REJECT --reject-with icmp6-reject-route', '-A X -j REJECT --reject-with icmp6-reject-route'),
    ('filter', '-j REJECT --reject-with reject-route', '-A X -j REJECT --reject-with icmp6-reject-route'),
    ('filter', '-j REJECT --reject-with ICMP6-NO-ROUTE', '-A X -j REJECT --reject-with icmp6-no-route'),
    ('filter', '-j REJECT --reject-with icmp-port-unreachable', None),
    ('filter', '-j REJECT --reject-with icmp-admin-prohibited', None),
    ('filter', '-j REJECT --reject-with icmp-host-prohibited', None),
    ('filter', '-p tcp -j REJECT --reject-with tcp-rst', None),
    ('filter', '-m recent --rcheck --seconds 10 --name A --rsource', '-A X -m recent --rcheck --seconds 10 --name A --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource'),
    ('filter', '-m recent --rcheck --seconds 10 --name A --mask ffff:ffff:: --rsource', '-A X -m recent --rcheck --seconds 10 --name A --mask ffff:ffff:: --rsource'),
    ('filter', '-m recent --rcheck --seconds 10 --name A --mask ffff:0:ffff:: --rsource', '-A X -m recent --rcheck --seconds 10 --name A --mask ffff:0:ffff:: --rsource'),
    ('filter', '-m recent --rcheck --seconds 10 --name A --mask 255.255.255.0 --rsource', None),
    ('filter', '-m recent --rcheck --seconds 10 --name A --mask 64 --rsource', None),
    ('filter', '-m recent --set --name A --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rdest', '-A X -m recent --set --name A --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rdest'),
    ('filter', '-m addrtype --dst-type LOCAL -j ACCEPT', '-A X -m addrtype --dst-type LOCAL -j ACCEPT'),
    ('filter', '-p icmp -j ACCEPT', '-A X -p icmp -j ACCEPT'),
    ('filter', '-p ipv6-icmp -j ACCEPT', '-A X -p ipv6-icmp -j ACCEPT'),
    ('filter', '-p icmpv6 -j ACCEPT', '-A X -p ipv6-icmp -j ACCEPT'),
    ('filter', '-p 58 -j ACCEPT', '-A X -p ipv6-icmp -j ACCEPT'),
    ('filter', '-p all -j ACCEPT', '-A X -j ACCEPT'),
    ('nat', '-p tcp -j DNAT --to-destination [fd00:10:244::5]:80', '-A X -p tcp -j DNAT --to-destination [fd00:10:244::5]:80'),
    ('nat', '-p tcp -j DNAT --to-destination [FD00:10:244:0::5]:80', '-A X -p tcp -j DNAT --to-destination [fd00:10:244::5]:80'),
    ('nat', '-j DNAT --to-destination fd00:10:244::5', '-A X -j DNAT --to-destination fd00:10:244::5'),
    ('nat', '-j DNAT --to-destination [fd00:10:244::5]', '-A X -j DNAT --to-destination fd00:10:244::5'),
    ('nat', '-j DNAT --to-destination fd00::1-fd00::5', '-A X -j DNAT --to-destination fd00::1-fd00::5'),
    ('nat', '-j DNAT --to-destination [fd00::1-fd00::5]', '-A X -j DNAT --to-destination fd00::1-fd00::5'),
    ('nat', '-p tcp -j DNAT --to-destination [fd00::1-fd00::5]:80-90', '-A X -p tcp -j DNAT --to-destination [fd00::1-fd00::5]:80-90'),
    ('nat', '-p tcp -j DNAT --to-destination [fd00::1]-[fd00::5]:80', None),
    ('nat', '-p tcp -j DNAT --to-destination fd00::1:80', '-A X -p tcp -j DNAT --to-destination fd00::1:80'),
    ('nat', '-p tcp -j DNAT --to-destination [fd00::1]:80-80', '-A X -p tcp -j DNAT --to-destination [fd00::1]:80'),
    ('nat', '-p tcp -j DNAT --to-destination [fd00::1]:', None),
    ('nat', '-p tcp -j DNAT --to-destination [::ffff:10.0.0.1]:80', '-A X -p tcp -j DNAT --to-destination [::ffff:10.0.0.1]:80'),
    ('nat', '-j DNAT --to-destination 10.0.0.1', None),
    ('nat', '-j DNAT --to-destination fd00::5-fd00::1', '-A X -j DNAT --to-destination fd00::5-fd00::1'),
    ('nat', '-j DNAT --to-destination [fd00::1]:80', None),
    ('nat', '-p tcp -j DNAT --to-destination [fd00::1]:80 --random --persistent', '-A X -p tcp -j DNAT --to-destination [fd00::1]:80 --random --persistent'),
    ('nat', '-j SNAT --to-source fd00::9', '-A X -j SNAT --to-source fd00::9'),
    ('nat', '-p tcp -j SNAT --to-source [fd00::9]:1000-2000 --random-fully', '-A X -p tcp -j SNAT --to-source [fd00::9]:1000-2000 --random-fully'),
    ('nat', '-j MASQUERADE --random-fully', '-A X -j MASQUERADE --random-fully'),
    ('nat', '-p tcp -j MASQUERADE --to-ports 1000-2000', '-A X -p tcp -j MASQUERADE --to-ports 1000-2000'),
    ('nat', '-j MARK --or-mark 0x4000', '-A X -j MARK --set-xmark 0x4000/0x4000'),
    ('nat', '-m mark ! --mark 0x4000/0x4000 -j RETURN', '-A X -m mark ! --mark 0x4000/0x4000 -j RETURN'),
    ('nat', '-m statistic --mode random --probability 0.3333333333 -j ACCEPT', '-A X -m statistic --mode random --probability 0.33333333349 -j ACCEPT'),
    ('nat', '-m addrtype --src-type LOCAL -j ACCEPT', '-A X -m addrtype --src-type LOCAL -j ACCEPT'),
    ('nat', '-m comment --comment "a b" -j ACCEPT', '-A X -m comment --comment "a b" -j ACCEPT'),
    ('nat', '-p sctp --dport 80 -j ACCEPT', '-A X -p sctp -m sctp --dport 80 -j ACCEPT'),
    ('nat', '-p udp --dport 80 -j ACCEPT', '-A X -p udp -m udp --dport 80 -j ACCEPT'),
    ('nat', '-j DNAT --to-destination fd00::1-fd00::1', '-A X -j DNAT --to-destination fd00::1'),
    ('nat', '-p tcp -j DNAT --to-destination [fd00::1]:90-80', None),
    ('nat', '-p tcp -j DNAT --to-destination [fd00::1]:0', '-A X -p tcp -j DNAT --to-destination [fd00::1]:0'),
    ('nat', '-p tcp -j DNAT --to-destination [fd00::1]x', '-A X -p tcp -j DNAT --to-destination fd00::1'),
    ('nat', '-p tcp -j DNAT --to-destination [fd00::1', None),
    ('nat', '-p tcp -j DNAT --to-destination [::ffff:0:0]:80', '-A X -p tcp -j DNAT --to-destination [::ffff:0.0.0.0]:80'),
    ('nat', '-j DNAT --to-destination ::1.2.3.4', '-A X -j DNAT --to-destination ::1.2.3.4'),
    ('nat', '-p tcp -j DNAT --to-destination [fd00::1]:080', None),
    ('filter', '-j REJECT --reject-with icmp6-not-neighbour', None),
    ('filter', '-j REJECT --reject-with not-neighbour', None),
    ('filter', '-j REJECT --reject-with icmp6-not-neighbor', None),
    ('filter', '-s ::1.2.3.4 -j ACCEPT', '-A X -s ::1.2.3.4/128 -j ACCEPT'),
    ('filter', '-s ::0.0.0.1/128 -j ACCEPT', '-A X -s ::1/128 -j ACCEPT'),
    ('filter', '-s 1::1:0:0:0/128 -j ACCEPT', '-A X -s 1::1:0:0:0/128 -j ACCEPT'),
    ('filter', '-s 1:0:0:1::1/128 -j ACCEPT', '-A X -s 1:0:0:1::1/128 -j ACCEPT'),
    ('filter', '-s ffff::/ffff:: -j ACCEPT', '-A X -s ffff::/16 -j ACCEPT'),
    ('filter', '-s fd00::/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff -j ACCEPT', '-A X -s fd00::/128 -j ACCEPT'),
    ('filter', '-s ::/::', '-A X'),
    ('nat', '-p tcp -j DNAT --to-destination [fd00::1]:010', '-A X -p tcp -j DNAT --to-destination [fd00::1]:8'),
    ('nat', '-p tcp -j DNAT --to-destination [fd00::1]:0x10', '-A X -p tcp -j DNAT --to-destination [fd00::1]:16'),
    ('nat', '-p tcp -j DNAT --to-destination [fd00::1]:10-0x20', '-A X -p tcp -j DNAT --to-destination [fd00::1]:10-32'),
    ('nat', '-p tcp -j DNAT --to-destination [fd00::1]:+10', '-A X -p tcp -j DNAT --to-destination [fd00::1]:10'),
    ('filter', '-s ::0.0.1.0 -j ACCEPT', '-A X -s ::100/128 -j ACCEPT'),
    ('filter', '-s ::1:0 -j ACCEPT', '-A X -s ::0.1.0.0/128 -j ACCEPT'),
    ('filter', '-s ::ffff:1:0:0 -j ACCEPT', '-A X -s ::ffff:1:0:0/128 -j ACCEPT'),
    ('nat', '-p tcp -j DNAT --to-destination [fd00::1]x:80', '-A X -p tcp -j DNAT --to-destination [fd00::1]:80'),
    ('nat', '-p tcp -j DNAT --to-destination [fd00::1]x', '-A X -p tcp -j DNAT --to-destination fd00::1'),
]

KSLAB_REFUSES6 = {
    # accepted by ip6tables (strtoul skips a '+'), refused by kslab, which reads numbers strictly
    "-p tcp -j DNAT --to-destination [fd00::1]:+10",
}
"""Lines the kernel accepts that kslab refuses (never the other way round)."""

LEGACY_ONLY6 = {
    # ip6tables-legacy accepts and prints it, ip6tables-nft refuses it; kslab refuses it
    "! -s ::/0 -j ACCEPT": "-A X ! -s ::/0 -j ACCEPT",
}
"""Lines only the legacy backend accepts (the cases above hold the nft answer), with what it prints."""


# ip6tables listings: printed by ip6tables-nft v1.8.9 -L X -n -v, then -t nat -L N -n --line-numbers,
# after ip6tables-nft-restore of LISTING6_TEXT (tests/test_kernel_roundtrip6.py re-checks them live).
LISTING6_TEXT = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:X - [0:0]
-A INPUT -j X
-A X -s fd00:10:244::/56 -d 2001:db8::1/128 -p tcp -m tcp --dport 80 -m comment --comment "a b" -j ACCEPT
-A X ! -s 2001:db8:abcd:1234:5678:9abc:def0:1234/128 ! -d fd00::/8 -p udp -j REJECT --reject-with icmp6-adm-prohibited
-A X -s 2001::/ffff:0:ffff:: -m addrtype --dst-type LOCAL -j DROP
-A X -p tcp -j REJECT --reject-with tcp-reset
-A X -j REJECT
-A X -m recent --rcheck --seconds 10 --reap --name A --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource -j RETURN
-A X -p ipv6-icmp -j ACCEPT
-A X -i eth0 -o eth1 -m conntrack --ctstate INVALID -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:N - [0:0]
-A N -p tcp -j DNAT --to-destination [fd00:10:244::5]:80
-A N -j DNAT --to-destination fd00::1-fd00::5
-A N -p tcp -j SNAT --to-source [fd00::9]:1000-2000 --random-fully
-A N -j MASQUERADE --random-fully
-A N -j MARK --set-xmark 0x4000/0x4000
COMMIT
"""
LISTING6_FILTER_X = (
    'Chain X (1 references)\n'
    ' pkts bytes target     prot opt in     out     source               destination         \n'
    '    0     0 ACCEPT     6    --  *      *       fd00:10:244::/56     2001:db8::1          tcp dpt:80 /* a b */\n'
    '    0     0 REJECT     17   --  *      *      !2001:db8:abcd:1234:5678:9abc:def0:1234 !fd00::/8             reject-with icmp6-adm-prohibited\n'
    '    0     0 DROP       0    --  *      *       2001::/ffff:0:ffff::  ::/0                 ADDRTYPE match dst-type LOCAL\n'
    '    0     0 REJECT     6    --  *      *       ::/0                 ::/0                 reject-with tcp-reset\n'
    '    0     0 REJECT     0    --  *      *       ::/0                 ::/0                 reject-with icmp6-port-unreachable\n'
    '    0     0 RETURN     0    --  *      *       ::/0                 ::/0                 recent: CHECK seconds: 10 reap name: A side: source mask: ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\n'
    '    0     0 ACCEPT     58   --  *      *       ::/0                 ::/0                \n'
    '    0     0 DROP       0    --  eth0   eth1    ::/0                 ::/0                 ctstate INVALID\n'
)
LISTING6_NAT_N = (
    'Chain N (0 references)\n'
    'num  target     prot opt source               destination         \n'
    '1    DNAT       6    --  ::/0                 ::/0                 to:[fd00:10:244::5]:80\n'
    '2    DNAT       0    --  ::/0                 ::/0                 to:fd00::1-fd00::5\n'
    '3    SNAT       6    --  ::/0                 ::/0                 to:[fd00::9]:1000-2000 random-fully\n'
    '4    MASQUERADE  0    --  ::/0                 ::/0                 random-fully\n'
    '5    MARK       0    --  ::/0                 ::/0                 MARK or 0x4000\n'
)
