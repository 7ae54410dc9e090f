import CPlexus
