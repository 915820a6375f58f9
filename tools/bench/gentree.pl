#!/usr/bin/perl
# gentree.pl ROOT NFILES CATLIST CATCOUNT
#
# Creates a deterministic synthetic source-like tree of NFILES regular files
# under ROOT (10 top dirs x 10 subdirs x ceil(NFILES/100) files; 111 dirs for
# the 50k tree).  Every file has unique content (a header naming the file
# followed by a slice of a fixed pseudo-random block), so a content-addressed
# filesystem cannot deduplicate them.  Size mix: 80% < 2 KiB, 18% 2-8 KiB,
# 2% 8-32 KiB (about 2 KiB on average).
#
# Writes to CATLIST the NUL-separated relative paths (relative to the
# directory that contains ROOT's basename) of CATCOUNT files spread evenly
# over the tree; that list is what the "cat" workload reads.
use strict;
use warnings;

my ($root, $n, $catlist, $catcount) = @ARGV;
die "usage: gentree.pl ROOT NFILES CATLIST CATCOUNT\n" unless defined $catcount;
die "gentree.pl: $root exists\n" if -e $root;

my $ntop = 10;
my $nsub = 10;
my $per  = int(($n + $ntop * $nsub - 1) / ($ntop * $nsub));

# xorshift32: deterministic, independent of perl's rand implementation
my $s = 2463534242;
sub rnd {
    $s ^= ($s << 13) & 0xffffffff;
    $s ^= ($s >> 17);
    $s ^= ($s << 5) & 0xffffffff;
    return $s;
}

my $block = '';
$block .= pack('N', rnd()) for 1 .. (65536 / 4);
$block .= $block;    # 128 KiB so any slice of <= 64 KiB fits

(my $base = $root) =~ s{.*/}{};
mkdir $root or die "mkdir $root: $!\n";
my @all;
my $made = 0;
TOP: for my $t (0 .. $ntop - 1) {
    my $td = sprintf('%s/d%02d', $root, $t);
    mkdir $td or die "mkdir $td: $!\n";
    for my $u (0 .. $nsub - 1) {
        my $sd = sprintf('%s/s%02d', $td, $u);
        mkdir $sd or die "mkdir $sd: $!\n";
        for my $f (0 .. $per - 1) {
            last TOP if $made >= $n;
            my $r = rnd() % 100;
            my $size = $r < 80 ? rnd() % 2048
                     : $r < 98 ? 2048 + rnd() % 6144
                     :           8192 + rnd() % 24576;
            my $rel = sprintf('%s/d%02d/s%02d/f%05d.c', $base, $t, $u, $f);
            my $hdr = "/* $rel */\n";
            my $off = rnd() % 65536;
            my $body = substr($block, $off, $size > length($hdr) ? $size - length($hdr) : 0);
            my $path = sprintf('%s/f%05d.c', $sd, $f);
            open(my $fh, '>:raw', $path) or die "open $path: $!\n";
            print $fh $hdr, $body or die "write $path: $!\n";
            close($fh) or die "close $path: $!\n";
            push @all, $rel;
            $made++;
        }
    }
}

# CATCOUNT files spread over the whole tree (every k-th file).
$catcount = $made if $catcount > $made;
open(my $cl, '>:raw', $catlist) or die "open $catlist: $!\n";
if ($catcount > 0) {
    my $step = $made / $catcount;
    for my $i (0 .. $catcount - 1) {
        print $cl $all[int($i * $step)], "\0";
    }
}
close($cl) or die "close $catlist: $!\n";
print "$made files\n";
